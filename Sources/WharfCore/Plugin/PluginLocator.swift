#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Turns a config `path:` into a library file: a path (anything with a '/' or ending in
/// ".so") is used as given, relative ones against `baseDirectory`; a bare NAME means
/// `libNAME.so`, searched in the plugin directories and then beside the executable.
public struct PluginLocator: Sendable {
    public var pluginDirectories: [String]
    public var baseDirectory: String

    public init(pluginDirectories: [String], baseDirectory: String) {
        self.pluginDirectories = pluginDirectories
        self.baseDirectory = baseDirectory
    }

    public func resolve(_ reference: String) throws(PluginLoadError) -> String {
        if reference.contains("/") || reference.hasSuffix(".so") {
            return reference.hasPrefix("/") ? reference : Self.join(baseDirectory, reference)
        }
        let fileName = "lib\(reference).so"
        let searched = searchDirectories
        for directory in searched {
            let candidate = Self.join(directory, fileName)
            if access(candidate, F_OK) == 0 { return candidate }
        }
        throw PluginLoadError(path: reference,
                              reason: "not found: no \(fileName) in \(searched.joined(separator: ", "))")
    }

    public var searchDirectories: [String] {
        var directories = pluginDirectories.map { $0.hasPrefix("/") ? $0 : Self.join(baseDirectory, $0) }
        if let executableDirectory = Self.executableDirectory { directories.append(executableDirectory) }
        return directories
    }

    /// The folder of the running executable (`swift build` puts the plugins there too).
    public static let executableDirectory: String? = {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        let path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return String(path[..<slash])
    }()

    static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty || directory == "." { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
