#include "CBuildInfo.h"

// Only this file sees the macro: the value comes from the C compiler's command line (-Xcc -DAGG_VERSION=...), so
// setting it recompiles one file and changes no tracked source.
#ifndef AGG_VERSION
#define AGG_VERSION "dev"
#endif

const char *cbuildinfo_version(void) { return AGG_VERSION; }
