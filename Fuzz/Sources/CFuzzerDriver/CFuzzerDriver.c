// Only the declaration in include/CFuzzerDriver.h is needed; libclang_rt.fuzzer provides the definition.
#include "CFuzzerDriver.h"
