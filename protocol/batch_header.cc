#include "protocol/batch_header.h"

#include "crypto/canonical.h"

namespace fieldsync::protocol {

std::string EncodeBatchHeader(const BatchHeader& header) {
  return crypto::CanonicalWriter(kBatchHeaderDomain)
      .Uuid(header.device_id)
      .Uuid(header.batch_id)
      .U64(header.sequence)
      .U32(header.sealing_key_id)
      .Finish();
}

}  // namespace fieldsync::protocol
