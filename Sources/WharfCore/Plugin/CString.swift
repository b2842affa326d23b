/// Copies between Swift values and caller-owned C memory.
enum CString {
    /// Copies `text` into a caller's C buffer, truncating, always NUL-terminating.
    static func copy(_ text: String, into buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
        guard let buffer, capacity > 0 else { return }
        let bytes = Array(text.utf8.prefix(capacity - 1))
        bytes.withUnsafeBufferPointer { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
        buffer[bytes.count] = 0
    }

    /// Fills a fixed-size C char array (imported as a tuple) with NUL-terminated text.
    static func fill<T>(_ tuple: inout T, with text: String) {
        withUnsafeMutableBytes(of: &tuple) { raw in
            let bytes = Array(text.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }
}

enum CStruct {
    /// Copies `value` into a caller's struct that may be an older, shorter version: only
    /// `declaredSize` bytes (its struct_size) are written. Returns how many were.
    @discardableResult
    static func copy<T>(_ value: inout T, into target: UnsafeMutablePointer<T>, declaredSize: Int) -> Int {
        let size = min(declaredSize, MemoryLayout<T>.size)
        withUnsafeBytes(of: &value) { source in
            UnsafeMutableRawPointer(target).copyMemory(from: source.baseAddress!, byteCount: size)
        }
        return size
    }

    /// Reads a caller's struct that may be an older, shorter version: fields beyond its
    /// `declaredSize` read as zero. Nil if it is too short to hold even its size field.
    static func read<T>(_ source: UnsafePointer<T>, declaredSize: Int, zero: T) -> T? {
        guard declaredSize >= 4 else { return nil }
        var value = zero
        let size = min(declaredSize, MemoryLayout<T>.size)
        withUnsafeMutableBytes(of: &value) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(start: source, count: size))
        }
        return value
    }
}
