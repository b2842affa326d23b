#if canImport(Glibc)
import Glibc
#endif

// libFuzzer's entry points. SwiftPM names an executable's entry `<module>_main` and aliases
// `main` to it, so libFuzzer's own `main` is never linked: ours hands control to
// `LLVMFuzzerRunDriver`, which is libFuzzer's main loop. `scripts/fuzz.sh` builds this.

nonisolated(unsafe) private var target: FuzzTarget?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try target!.run(bytes)
    } catch {
        fatalError("\(target!.rawValue): \(error)")
    }
    return 0
}

private typealias TestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(_ argc: UnsafeMutablePointer<CInt>,
                       _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                       _ callback: TestOneInput) -> CInt

@_cdecl("wharf_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = getenv("WHARF_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let chosen = FuzzTarget(rawValue: name) else {
        print("set WHARF_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        return 2
    }
    target = chosen
    var count = argc
    var vector = argv
    return runDriver(&count, &vector, fuzzOneInput)
}
