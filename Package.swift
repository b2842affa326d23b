// swift-tools-version: 6.1
import Foundation
import PackageDescription

/// Example plugins are plain C compiled as shared libraries (`lib<name>.so`), beside the `wharf`
/// executable. They import only `include/wharf.h`; nothing of the host.
let pluginNames = ["echo", "reverse", "separator_echo", "proxy", "message_proxy", "ffi_call"]

/// The seed services again, as Swift plugins (async/await, the WharfPlugin library).
let swiftPluginNames = ["swift_echo", "swift_reverse", "swift_separator_echo"]

let strictC: [CSetting] = [
    .headerSearchPath("../common"),
    .unsafeFlags(["-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"]),
]

/// What the fuzz checks need (see the end of this file).
var fuzzDependencies: [Target.Dependency] {
    ["WharfCore", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio")]
}

let package = Package(
    name: "wharf",
    products: [
        .executable(name: "wharf", targets: ["wharf"]),
        .executable(name: "nio-echo-baseline", targets: ["NIOEchoBaseline"]),
    ] + (pluginNames + ["cpp_echo", "ffi_example"] + swiftPluginNames).map {
        .library(name: $0, type: .dynamic, targets: ["Plugin_\($0)"])
    } + [
        .library(name: "WharfPlugin", targets: ["WharfPlugin"]),
        // A Swift plugin for the tests only (WharfPlugin's edges).
        .library(name: "swift_fixture", type: .dynamic, targets: ["SwiftPluginFixture"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // The C ABI: the one header plugin authors use, imported into Swift so the compiler
        // checks every host function against it.
        .target(name: "CWharf", path: "include", publicHeadersPath: "."),
        // epoll and eventfd for the relay pump, which Swift's Glibc module leaves out.
        .target(name: "CWharfLinux", cSettings: strictC),
        // The relay pump's TLS sessions, on BoringSSL as NIOSSL builds it (its prefixed
        // symbols are linked in through NIOSSL) or on the system's OpenSSL 3, loaded with
        // dlopen at run time (no headers or library needed to build); session ticket keys
        // shared by all workers.
        .target(name: "CWharfTLS", cSettings: strictC),
        .target(
            name: "WharfCore",
            dependencies: [
                "CWharf", "CWharfLinux", "CWharfTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The plugin test kit's in-memory connections and virtual clock.
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            // Dynamic exclusivity checks cost ~3% of a ping-pong round trip (swift_beginAccess
            // and a TLS lookup per class-property access). Debug builds, and so the tests,
            // keep them.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "wharf",
            dependencies: [
                "WharfCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmark only: raw SwiftNIO line echo, the baseline Wharf is measured against.
        .executableTarget(
            name: "NIOEchoBaseline",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/NIOEchoBaseline"
        ),
        // Swift plugins: async/await handlers on the host's event loop, over the C ABI only.
        .target(name: "WharfPlugin", dependencies: ["CWharf"]),
        .target(name: "SwiftPluginFixture", dependencies: ["WharfPlugin"], path: "Tests/SwiftPluginFixture"),
        // Blocking loopback sockets for tests that talk to real listeners.
        .target(name: "WharfTestSupport", path: "Tests/WharfTestSupport"),
        .testTarget(
            name: "WharfCoreTests",
            dependencies: [
                "WharfCore", "CWharf", "WharfTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Starts the real `wharf` binary; its C fixtures are compiled with cc at test time.
        .testTarget(name: "WharfIntegrationTests", dependencies: ["WharfTestSupport"], exclude: ["Fixtures"]),
        // The fuzz targets' checks, replayed over the committed corpus and seeded inputs.
        .testTarget(name: "WharfFuzzTests", dependencies: fuzzDependencies, path: "Tests/Fuzz",
                    exclude: ["Entry", "corpus", "ClientHello"]),
    ] + pluginNames.map {
        .target(name: "Plugin_\($0)", dependencies: ["CWharf"], path: "plugins/\($0)",
                publicHeadersPath: ".", cSettings: strictC,
                linkerSettings: $0 == "ffi_call" ? [.linkedLibrary("ffi")] : [])
    } + [
        // Not a plugin: the library whose functions ffi_call serves in etc/ffi.example.yaml.
        .target(name: "Plugin_ffi_example", path: "plugins/ffi_example", publicHeadersPath: ".", cSettings: strictC),
        // The C++ example, from the same header; no exception may cross into the host.
        // It reads the header by path, not through the CWharf module (clang does not import
        // a C module into C++ here).
        .target(name: "Plugin_cpp_echo", path: "plugins/cpp_echo", publicHeadersPath: ".",
                cxxSettings: [.headerSearchPath("../../include"),
                              .unsafeFlags(["-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-fno-exceptions"])]),
    ] + swiftPluginNames.map {
        .target(name: "Plugin_\($0)", dependencies: ["WharfPlugin"], path: "plugins/\($0)", exclude: ["cases.yaml"])
    },
    cLanguageStandard: .c11,
    cxxLanguageStandard: .cxx20
)

/// `WHARF_FUZZ=1` (set by scripts/fuzz.sh) turns the checks into one libFuzzer executable,
/// `wharf-fuzz`, built with `-sanitize=fuzzer,address`; the test target that shares its
/// sources is left out of that build.
if ProcessInfo.processInfo.environment["WHARF_FUZZ"] != nil {
    package.targets.removeAll { $0.name == "WharfFuzzTests" }
    package.targets.append(.executableTarget(
        name: "wharf-fuzz", dependencies: fuzzDependencies, path: "Tests/Fuzz",
        exclude: ["Regression", "corpus", "ClientHello"],
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    package.products.append(.executable(name: "wharf-fuzz", targets: ["wharf-fuzz"]))
}
