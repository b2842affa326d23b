import CWharfLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Memory the supervisor shares with its workers: an anonymous file (`memfd_create`)
/// mapped `MAP_SHARED`, handed to a worker as a descriptor at spawn. Zeroed when created.
/// Unmapped (and the descriptor closed, if still open) when released.
final class SharedMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// The file; closed once it was handed on (`closeDescriptor`), or at once for memory no
    /// other process will see.
    private(set) var descriptor: CInt

    private init(base: UnsafeMutableRawPointer, size: Int, descriptor: CInt) {
        self.base = base
        self.size = size
        self.descriptor = descriptor
    }

    deinit {
        munmap(base, size)
        closeDescriptor()
    }

    static func create(name: String, size: Int) -> SharedMemory? {
        let fd = cwharf_memfd(name)
        guard fd >= 0 else { return nil }
        guard ftruncate(fd, off_t(size)) == 0, let memory = map(fd, size) else {
            close(fd)
            return nil
        }
        return memory
    }

    /// Maps an inherited file of exactly `size` bytes; the descriptor is closed after.
    static func attach(_ fd: CInt, size: Int) -> SharedMemory? {
        var info = stat()
        guard fstat(fd, &info) == 0, Int(info.st_size) == size, let memory = map(fd, size) else { return nil }
        memory.closeDescriptor()
        return memory
    }

    private static func map(_ fd: CInt, _ size: Int) -> SharedMemory? {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else { return nil }
        return SharedMemory(base: pointer, size: size, descriptor: fd)
    }

    func closeDescriptor() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }
}
