import CWharf

/// What this build is, for `--version` and the `wharf_build_info` metric.
public enum WharfBuild {
    public static let version = "0.1.0"
    public static let abi = "\(WHARF_ABI_MAJOR).\(WHARF_ABI_MINOR)"
}
