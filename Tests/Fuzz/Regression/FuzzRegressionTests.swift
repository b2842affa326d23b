import Foundation
import Testing

/// The fuzz targets' checks as ordinary tests: every committed corpus input (the seeds, and
/// each input a fuzzing run found a fault with, kept as a regression), then a few thousand
/// inputs from a fixed-seed generator, so `swift test` exercises every check without
/// libFuzzer. `scripts/fuzz.sh` runs the same checks under libFuzzer.
@Suite struct FuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("corpus")

    static func inputs(for target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
        let folder = corpus.appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().compactMap { name in
            (try? Data(contentsOf: folder.appendingPathComponent(name))).map { (name, Array($0)) }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func theCommittedCorpusPasses(_ target: FuzzTarget) throws {
        let inputs = Self.inputs(for: target)
        #expect(!inputs.isEmpty, "every target has seeds in Tests/Fuzz/corpus/\(target.rawValue)")
        for (name, bytes) in inputs {
            #expect(throws: Never.self, "\(target.rawValue)/\(name)") { try target.run(bytes) }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seededRandomInputsPass(_ target: FuzzTarget) throws {
        var generator = SeededBytes(seed: 0x5EED_0000 + UInt64(target.rawValue.utf8.count))
        let rounds = target == .config ? 300 : 3000
        for round in 0..<rounds {
            let bytes = generator.next(count: 1 + round % 96)
            do {
                try target.run(bytes)
            } catch {
                Issue.record("\(target.rawValue), round \(round), input \(bytes): \(error)")
                return
            }
        }
    }
}

extension FuzzTarget: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}
