import Foundation

/// The kernel's scheduling policy of a process's threads, read from `/proc`.
public enum ThreadPolicy: Int, Sendable {
    case other = 0
    case fifo = 1
    case roundRobin = 2
    case batch = 3
    case idle = 5

    /// The policy of each thread of `pid` whose name (`comm`) starts with `prefix`.
    public static func of(threadsNamed prefix: String, in pid: Int32 = getpid()) -> [ThreadPolicy] {
        let tasks = "/proc/\(pid)/task"
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
        return ids.compactMap { id -> ThreadPolicy? in
            guard let name = try? String(contentsOfFile: "\(tasks)/\(id)/comm", encoding: .utf8),
                  name.hasPrefix(prefix),
                  let stat = try? String(contentsOfFile: "\(tasks)/\(id)/stat", encoding: .utf8),
                  let end = stat.lastIndex(of: ")") else { return nil }
            // After "pid (comm)", field 3 is the state; the policy is field 41.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            guard fields.count > 38, let policy = Int(fields[38]) else { return nil }
            return ThreadPolicy(rawValue: policy)
        }
    }
}
