import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `--ready-file`: the listeners' real addresses as JSON, written (atomically, by rename)
/// once they serve, for tests and scripts that bind port 0.
public enum ReadyFile {
    public static func write(_ listeners: [BoundListener], to path: String, logger: Logger) {
        let entries = listeners.map { listener in
            "{\"name\":\"\(listener.config.displayName)\",\"plugin\":\"\(listener.config.plugin)\","
                + "\"address\":\"\(listener.address)\",\"port\":\(listener.port)}"
        }
        let text = "[" + entries.joined(separator: ",") + "]\n"
        let temporary = path + ".tmp"
        guard let file = fopen(temporary, "w") else {
            logger.error("cannot write the ready file \(path): \(String(cString: strerror(errno)))")
            return
        }
        fputs(text, file)
        fclose(file)
        rename(temporary, path)
    }
}
