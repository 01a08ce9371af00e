// Planted by tests/modules: the tablet library does not link the store.
// Never compiled.
#include "storage/store.h"
