// Block sizes of the protobuf arenas on the hot paths: a pushed batch's
// parsed payload (server/sealed_batch.cc), its log entries
// (sync/ingest.cc) and a pull chunk (sync/pull.cc).
//
// fieldsyncd's allocator (jemalloc, server/main.cc) gives an allocation
// over 256 KiB back to the system as soon as it is freed, which bounds what
// a flood of large calls can hold. An arena block that large would be
// mapped and faulted in afresh, a page fault per 4 KiB, for every batch;
// blocks up to kMaxArenaBlock are kept by the allocator and reused by the
// next batch (docs/BENCHMARKS.md, "Memory reused, not faulted in").
#ifndef FIELDSYNC_COMMON_ARENA_BLOCKS_H_
#define FIELDSYNC_COMMON_ARENA_BLOCKS_H_

#include <algorithm>
#include <cstddef>

#include "google/protobuf/arena.h"

namespace fieldsync {

// Under the allocator's 256 KiB, with room for the arena's block header.
inline constexpr size_t kMaxArenaBlock = size_t{224} << 10;

// Options for an arena expected to hold about `expected_bytes`: the first
// block that size (at least 4 KiB), every block at most kMaxArenaBlock.
inline google::protobuf::ArenaOptions ArenaOptionsFor(size_t expected_bytes) {
  google::protobuf::ArenaOptions options;
  options.start_block_size = std::clamp<size_t>(expected_bytes, 4096, kMaxArenaBlock);
  options.max_block_size = kMaxArenaBlock;
  return options;
}

}  // namespace fieldsync

#endif  // FIELDSYNC_COMMON_ARENA_BLOCKS_H_
