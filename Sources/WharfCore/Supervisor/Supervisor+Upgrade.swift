import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The old supervisor's side of a binary upgrade in progress.
final class UpgradeInProgress {
    let pid: pid_t
    let channel: EventLoopFuture<any Channel>
    let done: (Result<pid_t, UpgradeFailure>) -> Void
    var newSupervisorReady = false
    var handedOver = false

    init(pid: pid_t, channel: EventLoopFuture<any Channel>, done: @escaping (Result<pid_t, UpgradeFailure>) -> Void) {
        self.pid = pid
        self.channel = channel
        self.done = done
    }
}

public struct UpgradeFailure: Error, CustomStringConvertible {
    public let description: String
}

/// A binary upgrade (`wharf upgrade`, SIGUSR2), like nginx's USR2 and HAProxy's `-x`: the
/// executable at the path this one was started from is started with the same arguments and
/// every listening socket (the same sockets: nothing is re-bound, nothing queued is lost). Its
/// workers get ready but wait; when they are, this supervisor's workers retire (stop accepting,
/// keep their connections), and once none accepts the new ones begin. This supervisor exits
/// after its last worker. If the new one fails to start, nothing changes.
///
/// The channel between the two is a socketpair at the new supervisor's fd 3; the sockets
/// follow from fd 4, named in `WHARF_UPGRADE_SOCKETS` ("fd slot key" lines).
extension Supervisor {
    static let upgradeVariable = "WHARF_UPGRADE_SOCKETS"

    func startUpgrade(_ done: @escaping (Result<pid_t, UpgradeFailure>) -> Void) {
        if upgrade != nil { return done(.failure(UpgradeFailure(description: "an upgrade is in progress"))) }
        if let reason = machine.canReload { return done(.failure(UpgradeFailure(description: reason))) }
        guard let pair = ControlChannel.pair() else {
            return done(.failure(UpgradeFailure(description: "socketpair: \(ListeningSocket.errorText())")))
        }
        var sockets: [ListeningSocket] = []
        var names: [String] = []
        for (key, group) in socketGroups.sorted(by: { $0.key < $1.key }) {
            for (slot, socket) in group.enumerated() {
                names.append("\(4 + sockets.count) \(slot) \(key)")
                sockets.append(socket)
            }
        }
        if let adminSocket {
            names.append("\(4 + sockets.count) 0 \(ListeningSocket.adminKey)")
            sockets.append(adminSocket)
        }
        var environment = Self.currentEnvironment.filter { !$0.hasPrefix(Self.upgradeVariable + "=") }
        environment.append(Self.upgradeVariable + "=" + names.joined(separator: "\n"))
        if let path = notifier?.path { environment.append("NOTIFY_SOCKET=\(path)") }
        let pid: pid_t
        do throws(ProcessSpawner.Failure) {
            // Blocked until the new supervisor handles them (`installSignalHandlers`): a
            // hang-up to the process group during the upgrade waits instead of killing it.
            pid = try ProcessSpawner.spawn(executablePath, arguments: options.arguments,
                                           descriptors: [pair.remote] + sockets.map(\.descriptor), environment: environment,
                                           blocking: SupervisorSignals.numbers)
        } catch {
            close(pair.local)
            close(pair.remote)
            return done(.failure(UpgradeFailure(description: error.description)))
        }
        close(pair.remote)
        // The new supervisor serves the admin endpoint from its copy; requests wait in the
        // backlog meanwhile. A failed upgrade serves it here again.
        adminServer?.close(promise: nil)
        adminServer = nil
        logger.notice("upgrade: started \(executablePath) as pid \(pid); this supervisor serves until it is ready")
        let channel = ControlChannel.open(pair.local, on: eventLoop) { line in
            if line == "ready" { self.newSupervisorReady() }
        }
        upgrade = UpgradeInProgress(pid: pid, channel: channel, done: done)
    }

    /// The new supervisor's workers are ready and waiting: ours retire.
    private func newSupervisorReady() {
        guard let upgrade, !upgrade.newSupervisorReady else { return }
        upgrade.newSupervisorReady = true
        logger.notice("upgrade: pid \(upgrade.pid) is ready; this supervisor's workers retire")
        notifier?.notify(["MAINPID=\(upgrade.pid)", "STATUS=handed over to pid \(upgrade.pid)"])
        perform(machine.retireAll(at: .now()))
    }

    /// After every batch of actions: once none of our workers accepts, the new ones may.
    func upgradeProgressed() {
        guard let upgrade, upgrade.newSupervisorReady, !upgrade.handedOver, machine.everyWorkerReleased else { return }
        upgrade.handedOver = true
        upgrade.channel.whenSuccess { $0.writeAndFlush(ByteBuffer(string: "released\n"), promise: nil) }
        controlServer?.close(promise: nil)
        closeAllSockets()
        upgrade.done(.success(upgrade.pid))
    }

    /// The new supervisor exited: before it was ready, the upgrade failed and nothing changed.
    func upgradeEnded(status: CInt) {
        guard let upgrade else { return }
        let how = ProcessSpawner.describe(status: status)
        if upgrade.newSupervisorReady {
            logger.error("upgrade: the new supervisor (pid \(upgrade.pid)) \(how) after taking over")
            return
        }
        self.upgrade = nil
        upgrade.channel.whenSuccess { $0.close(promise: nil) }
        serveAdmin()
        logger.error("upgrade failed: the new supervisor (pid \(upgrade.pid)) \(how) before it was ready; this one keeps serving")
        upgrade.done(.failure(UpgradeFailure(description: "the new wharf \(how) before it was ready (see its log)")))
    }

    /// New side: adopts the sockets handed over and opens the channel to the old supervisor.
    /// Returns whether this supervisor was started by an upgrade.
    func takeHandover() -> Bool {
        guard let value = getenv(Self.upgradeVariable).map({ String(cString: $0) }) else { return false }
        unsetenv(Self.upgradeVariable)
        var groups: [String: [(slot: Int, socket: ListeningSocket)]] = [:]
        for line in value.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let fd = CInt(fields[0]), let slot = Int(fields[1]) else { continue }
            groups[String(fields[2]), default: []].append((slot, ListeningSocket.adopt(descriptor: fd, key: String(fields[2]))))
        }
        if let admin = groups.removeValue(forKey: ListeningSocket.adminKey)?.first {
            inheritedAdminSocket = admin.socket
        }
        for (key, sockets) in groups {
            socketGroups[key] = sockets.sorted { $0.slot < $1.slot }.map(\.socket)
        }
        _ = fcntl(3, F_SETFD, FD_CLOEXEC)
        // `released`, or the old supervisor gone: nobody else accepts.
        handover = ControlChannel.open(3, on: eventLoop, onLine: { line in
            if line == "released" { self.perform(self.machine.releaseHandover(at: .now())) }
        }, onClose: { self.perform(self.machine.releaseHandover(at: .now())) })
        logger.notice("upgrade: took over \(groups.values.joined().count) listening socket(s)")
        return true
    }

    static var currentEnvironment: [String] {
        var environment: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            environment.append(String(cString: pointer))
            entry += 1
        }
        return environment
    }

    static func resolveExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "/proc/self/exe" }
        let path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(10)) : path
    }
}
