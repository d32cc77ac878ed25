import CBuildInfo

/// What the binaries say about their build: the version `--version` prints, the daemons log at start and
/// `agg_build_info` exports.
public enum BuildInfo {
    /// "dev" from a plain `swift build`; a package build (scripts/package.sh) sets it from `git describe`.
    public static let version = String(cString: cbuildinfo_version())
}
