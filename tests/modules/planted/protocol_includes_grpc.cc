// Planted by tests/modules: protocol/ is gRPC-free. Never compiled.
#include <grpcpp/grpcpp.h>

#include "fieldsync/v1/sync.grpc.pb.h"
