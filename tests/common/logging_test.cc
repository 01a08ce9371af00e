#include "common/logging.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fieldsync::log {
namespace {

TEST(LoggingTest, KeyValueQuotesValuesThatWouldBreakTheLine) {
  EXPECT_EQ(FormatLine(Format::kKeyValue, Level::kInfo, "rpc",
                       {{"rpc", "/a.B/C"}, {"reason", "two words"}, {"n", 3}}),
            "level=info event=rpc rpc=/a.B/C reason=\"two words\" n=3");
  EXPECT_EQ(FormatLine(Format::kKeyValue, Level::kWarn, "x", {{"v", "a\"b\nc"}}),
            "level=warn event=x v=\"a\\\"b\\x0ac\"");
}

TEST(LoggingTest, JsonEscapesAndKeepsNumbersBare) {
  EXPECT_EQ(FormatLine(Format::kJson, Level::kError, "e", {{"s", "q\"\n"}, {"ms", 1.5}}),
            "{\"level\":\"error\",\"event\":\"e\",\"s\":\"q\\\"\\n\",\"ms\":1.500000}");
}

TEST(LoggingTest, ParsesLevelsAndFormats) {
  Level l;
  Format f;
  EXPECT_TRUE(ParseLevel("warn", &l).ok());
  EXPECT_EQ(l, Level::kWarn);
  EXPECT_FALSE(ParseLevel("loud", &l).ok());
  EXPECT_TRUE(ParseFormat("json", &f).ok());
  EXPECT_FALSE(ParseFormat("xml", &f).ok());
}

TEST(LoggingTest, JsonLineAtATimeStartsWithTheObject) {
  EXPECT_EQ(FormatLineAt(Format::kJson, absl::FromUnixMillis(1796334000123), Level::kInfo, "rpc",
                         {{"code", 0}}),
            "{\"time\":\"2026-12-03T21:40:00.123Z\",\"level\":\"info\",\"event\":\"rpc\","
            "\"code\":0}");
  EXPECT_EQ(FormatLineAt(Format::kKeyValue, absl::FromUnixMillis(1796334000123), Level::kInfo,
                         "rpc", {{"code", 0}}),
            "2026-12-03T21:40:00.123Z level=info event=rpc code=0");
}

TEST(LoggingTest, EveryJsonLineWrittenIsOneValidObject) {
  Configure(Level::kDebug, Format::kJson);
  ::testing::internal::CaptureStderr();
  Write(Level::kInfo, "plain", {{"principal", "staff/admin"}, {"n", 3}});
  Write(Level::kWarn, "awkward \"event\"\n",
        {{"quote", "a\"b\\c"}, {"ctl", std::string("\x01\x1f\t")}});
  Write(Level::kError, "bytes",
        {{"latin1", "caf\xe9"}, {"cut", "\xe2\x82"}, {"utf8", "\xe2\x82\xac"}});
  Write(Level::kDebug, "numbers",
        {{"nan", std::nan("")},
         {"inf", std::numeric_limits<double>::infinity()},
         {"neg", -1.5},
         {"big", uint64_t{18446744073709551615u}}});
  Write(Level::kInfo, "empty", {});
  std::string out = ::testing::internal::GetCapturedStderr();
  Configure(Level::kInfo, Format::kKeyValue);

  std::istringstream lines(out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.front(), '{') << line;
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(parsed.is_discarded()) << line;
    ASSERT_TRUE(parsed.is_object()) << line;
    EXPECT_TRUE(parsed["time"].is_string()) << line;
    EXPECT_TRUE(parsed["level"].is_string()) << line;
    EXPECT_TRUE(parsed["event"].is_string()) << line;
  }
  EXPECT_EQ(count, 5);
  EXPECT_THAT(out, ::testing::HasSubstr("\"utf8\":\"\xe2\x82\xac\""));
  EXPECT_THAT(out, ::testing::HasSubstr("\"latin1\":\"caf\\ufffd\""));
  EXPECT_THAT(out, ::testing::HasSubstr("\"big\":18446744073709551615"));
  EXPECT_THAT(out, ::testing::HasSubstr("\"inf\":\"inf\""));
}

}  // namespace
}  // namespace fieldsync::log
