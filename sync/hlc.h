// Hybrid logical clock times (DESIGN §5-6): ordering, the (HLC, writer)
// order that picks the winner of concurrent writes, and clamping device
// times that run ahead of the server clock.
#ifndef FIELDSYNC_SYNC_HLC_H_
#define FIELDSYNC_SYNC_HLC_H_

#include <cstdint>
#include <string_view>

#include "absl/time/time.h"
#include "fieldsync/v1/records.pb.h"

namespace fieldsync::sync {

// The default bound on how far a device HLC may run ahead of the server.
inline constexpr absl::Duration kDefaultMaxClockSkew = absl::Minutes(5);

// <0, 0, >0 as a is before, equal to, after b, by (wall_micros, logical).
inline int CompareHlc(const v1::Hlc& a, const v1::Hlc& b) {
  if (a.wall_micros() != b.wall_micros()) return a.wall_micros() < b.wall_micros() ? -1 : 1;
  if (a.logical() != b.logical()) return a.logical() < b.logical() ? -1 : 1;
  return 0;
}

// The winner order of concurrent writes: HLC first, then the writer id
// bytewise. <0, 0, >0 like CompareHlc.
inline int CompareWrite(const v1::Hlc& a, std::string_view writer_a, const v1::Hlc& b,
                        std::string_view writer_b) {
  int c = CompareHlc(a, b);
  if (c != 0) return c;
  int w = writer_a.compare(writer_b);
  return w < 0 ? -1 : (w > 0 ? 1 : 0);
}

// When `hlc` is more than `max_skew` ahead of `server_now`, sets it to
// (server_now in micros, same logical counter) and returns true; otherwise
// leaves it and returns false.
inline bool ClampHlc(absl::Time server_now, absl::Duration max_skew, v1::Hlc* hlc) {
  const int64_t now = absl::ToUnixMicros(server_now);
  if (hlc->wall_micros() <= now + absl::ToInt64Microseconds(max_skew)) return false;
  hlc->set_wall_micros(now);
  return true;
}

// The HLC of a server-side change made at `server_now`.
inline v1::Hlc ServerHlc(absl::Time server_now) {
  v1::Hlc hlc;
  hlc.set_wall_micros(absl::ToUnixMicros(server_now));
  return hlc;
}

}  // namespace fieldsync::sync

#endif  // FIELDSYNC_SYNC_HLC_H_
