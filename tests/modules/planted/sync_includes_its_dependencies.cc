// Planted by tests/modules: what sync/ links, accepted. Never compiled.
#include "crypto/hash.h"
#include "fieldsync/v1/records.pb.h"
#include "keys/case_keys.h"
#include "storage/store.h"
#include "sync/ingest.h"
