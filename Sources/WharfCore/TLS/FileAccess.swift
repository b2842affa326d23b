#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum FileAccess {
    /// Why `path` cannot be opened for reading ("No such file or directory"), or nil if it
    /// can. Checked before handing paths to NIOSSL, whose load errors do not say why.
    static func unreadableReason(_ path: String) -> String? {
        guard let handle = fopen(path, "rb") else { return String(cString: strerror(errno)) }
        fclose(handle)
        return nil
    }
}
