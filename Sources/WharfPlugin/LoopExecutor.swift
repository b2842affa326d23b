import CWharf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs a plugin's tasks on its event loop: the task executor of every handler task. The
/// host calls the plugin only on the loop (handle_stream, completions, loop posts); each such
/// entry runs the jobs it made ready before it returns, so a resumed task continues inside
/// the very callback that resumed it: no thread hop, no lock, no extra loop turn. A job
/// enqueued from another thread (say, after an await on something that is not Wharf's) is
/// posted onto the loop with loop_post.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    private let host: UnsafePointer<wharf_host_api>
    private let loop: OpaquePointer?
    /// Jobs made ready on the loop, run at the end of the current entry. Loop-confined.
    private var ready: [UnownedJob] = []
    private var depth = 0
    /// The loop's thread, known from the first entry.
    private var loopThread: pthread_t?
    /// The instance's open streams, by handle: what keeps a Stream alive until its close
    /// notification (the executor outlives them: it goes with the instance).
    var open: [UInt: Stream] = [:]

    init(host: UnsafePointer<wharf_host_api>, loop: OpaquePointer?) {
        self.host = host
        self.loop = loop
    }

    /// Wraps every call from the host into the plugin: runs what became ready meanwhile.
    func entry<T>(_ body: () -> T) -> T {
        if depth == 0 { loopThread = pthread_self() }
        depth += 1
        let result = body()
        depth -= 1
        if depth == 0 { drain() }
        return result
    }

    private func drain() {
        depth += 1
        var index = 0
        while index < ready.count {
            let job = ready[index]
            index += 1
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
        ready.removeAll(keepingCapacity: true)
        depth -= 1
    }

    private var onLoop: Bool {
        guard let loopThread else { return false }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if onLoop, depth > 0 {
            ready.append(job)
            return
        }
        // Off the loop, or on it outside any entry: through the host, onto the loop.
        if !post({ [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }) {
            job.runSynchronously(on: asUnownedTaskExecutor()) // no loop (validate mode): nothing else can run it
        }
    }

    /// Runs `body` on the loop soon, as an entry, from any thread: a job made ready off the
    /// loop, or a task cancelled elsewhere. It runs even when the instance is shutting down
    /// (a job must run for its task to end; a host call then just fails). False if it could
    /// not be posted (no loop).
    @discardableResult
    func post(_ body: @escaping () -> Void) -> Bool {
        let box = Unmanaged.passRetained(PostedWork(executor: self, body: body)).toOpaque()
        guard let loop, host.pointee.loop_post(loop, Self.runPosted, box) == WHARF_OK else {
            Unmanaged<PostedWork>.fromOpaque(box).release()
            return false
        }
        return true
    }

    private final class PostedWork {
        let executor: LoopExecutor
        let body: () -> Void
        init(executor: LoopExecutor, body: @escaping () -> Void) {
            self.executor = executor
            self.body = body
        }
    }

    private static let runPosted: wharf_post_fn = { userdata, _ in
        guard let userdata else { return }
        let work = Unmanaged<PostedWork>.fromOpaque(userdata).takeRetainedValue()
        work.executor.entry(work.body)
    }
}
