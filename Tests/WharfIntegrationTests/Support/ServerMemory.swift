import Foundation
import WharfTestSupport

/// The resident set size of process `pid`, in kilobytes.
func residentKilobytes(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let value = Int(line.split(separator: " ").dropFirst().first ?? "") else {
        throw TestError.failed("no VmRSS for \(pid)")
    }
    return value
}

/// Floods `client` for 3 s (see `TestSocket.flood`) and returns how much got out and how
/// much the worker's RSS grew meanwhile, in KB: backpressure keeps both small.
func floodAndWatch(_ client: TestSocket, server: RunningWharf) throws -> (sent: Int, growthKB: Int) {
    usleep(200_000)
    let before = try residentKilobytes(server.workerPID())
    let sent = client.flood(seconds: 3)
    return (sent, try residentKilobytes(server.workerPID()) - before)
}
