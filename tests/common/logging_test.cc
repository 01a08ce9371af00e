#include "common/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace fieldsync::log
