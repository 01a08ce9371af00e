// Planted by tests/modules: sync/ does not link server/. Never compiled.
#include "server/rpc.h"
