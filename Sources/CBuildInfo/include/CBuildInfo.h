// The version agg was built as. scripts/package.sh sets it with -Xcc -DAGG_VERSION='"…"' (from `git describe`);
// a plain `swift build` leaves it "dev", so a clean clone without git tags, or without git, still builds.
#ifndef AGG_CBUILDINFO_H
#define AGG_CBUILDINFO_H

/// The version string, e.g. "0.3.0+4.g1a2b3c4" from a package build or "dev".
const char *cbuildinfo_version(void);

#endif
