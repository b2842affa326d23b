import NIOCore
import Testing
@testable import WharfCore

/// The lifecycle machine as a value: every event, the action it answers with, and every
/// deadline, driven by a clock that is just a number.
@Suite struct StreamStateMachineTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let token = CompletionToken(function: nil, context: nil)
    let other = CompletionToken(function: nil, context: UnsafeMutableRawPointer(bitPattern: 8))

    func at(_ milliseconds: Int64) -> NIODeadline { t0 + .milliseconds(milliseconds) }

    func machine(awaiting: Preamble = [], _ timeouts: StreamTimeouts = StreamTimeouts()) -> StreamStateMachine {
        StreamStateMachine(awaiting: awaiting, maxBufferSize: 64, timeouts: timeouts, now: t0)
    }

    func openMachine(_ timeouts: StreamTimeouts = StreamTimeouts()) -> StreamStateMachine {
        var machine = machine(timeouts)
        #expect(machine.activate(now: t0) == .open)
        return machine
    }

    // MARK: Opening

    @Test func withoutAPreambleTheStreamOpensOnActivation() {
        var machine = machine()
        #expect(machine.activate(now: t0) == .open)
        #expect(machine.state == .open)
        #expect(machine.activate(now: t0) == .none, "handlerAdded and channelActive may both report it")
    }

    /// A PROXY header arriving alone is taken by the decoder in front: the stream gets no
    /// bytes for its read, and must ask for the TLS handshake's.
    @Test func aReadTheDecoderTookStillEndsTheRequest() {
        var machine = machine(awaiting: [.proxyHeader, .tlsHandshake])
        #expect(machine.activate(now: t0) == .readPreamble)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == false, "already requested")
        #expect(machine.preambleStepDone(.proxyHeader, now: at(5)) == false)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true, "the handshake's bytes are asked for")
    }

    /// The other way round: a read that brought bytes, during which the stream asked for
    /// the next one, leaves that request standing (a second `read()` per round trip cost
    /// ~1,000 instructions of NIO pipeline for nothing).
    @Test func aReadThatBroughtBytesLeavesTheNextRequestStanding() {
        var machine = openMachine()
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true)
        _ = machine.received(ByteBuffer(string: "ping\n"), now: at(1))
        _ = machine.startRead(.bytes(count: 64, partial: true), token: token, now: at(1))
        _ = machine.serviceRead(now: at(1))
        _ = machine.startRead(.bytes(count: 64, partial: true), token: token, now: at(1))
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true, "asked during the read")
        machine.readComplete()
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == false, "still asked")
    }

    @Test func aPreambleOpensOnlyWhenEveryStepIsDone() {
        var machine = machine(awaiting: [.proxyHeader, .tlsHandshake])
        #expect(machine.activate(now: t0) == .readPreamble)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true, "the preamble is read from the socket")
        #expect(machine.nextDeadline == at(10_000), "the handshake timeout bounds it")
        #expect(machine.preambleStepDone(.proxyHeader, now: at(5)) == false)
        #expect(machine.received(ByteBuffer(string: "early"), now: at(6)) == .none, "kept for the plugin")
        #expect(machine.tlsHandshakeCompleted(now: at(7)) == .open)
        #expect(machine.state == .open)
        #expect(machine.reads.bufferedBytes == 5)
        #expect(machine.nextDeadline == nil, "no handshake deadline once open")
    }

    @Test func aSilentPreambleIsAbandonedAtItsDeadline() {
        var machine = machine(awaiting: .proxyHeader, StreamTimeouts(handshake: .milliseconds(200)))
        _ = machine.activate(now: t0)
        #expect(machine.timerFired(now: at(199)) == .none)
        #expect(machine.timerFired(now: at(200)) == .abandon)
        #expect(machine.timerFired(now: at(201)) == .none)
        #expect(machine.channelInactive() == .abandoned(.timedOut))
        #expect(machine.state == .finished)
    }

    @Test func aFailedOrClosedPreambleIsAbandonedOnce() {
        var machine = machine(awaiting: .tlsHandshake)
        _ = machine.activate(now: t0)
        #expect(machine.errorCaught(.tlsFailed) == .abandon)
        #expect(machine.inputClosed() == .none, "the first failure wins")
        #expect(machine.channelInactive() == .abandoned(.tlsFailed))

        var eof = self.machine(awaiting: .proxyHeader)
        _ = eof.activate(now: t0)
        #expect(eof.inputClosed() == .abandon)
        #expect(eof.channelInactive() == .abandoned(.closed))
    }

    // MARK: Reads

    @Test func aReadIsServicedOnceAndDeliveredWithItsToken() {
        var machine = openMachine()
        #expect(machine.startRead(.until(delimiter: [10], maxBytes: 0), token: other, now: t0) == nil)
        #expect(machine.readStartedAction() == .none, "nothing buffered could decide it: no evaluation")
        #expect(machine.received(ByteBuffer(string: "hi\nmore"), now: at(1)) == .serviceRead)
        #expect(machine.received(ByteBuffer(string: "!"), now: at(1)) == .none, "one evaluation queued at a time")
        #expect(machine.serviceRead(now: at(1)) == .deliver(ByteBuffer(string: "hi\n"), other))
        #expect(machine.reads.bufferedBytes == 5)
        #expect(machine.startRead(.bytes(count: 1, partial: false), token: token, now: at(2)) == nil)
        #expect(machine.readStartedAction() == .serviceRead, "buffered bytes may decide it")
        #expect(machine.startRead(.bytes(count: 1, partial: false), token: token, now: at(2)) == .busy)
    }

    @Test func aFailedReadSaysHowTheStreamCloses() {
        var limit = openMachine()
        _ = limit.startRead(.until(delimiter: [10], maxBytes: 2), token: token, now: t0)
        _ = limit.received(ByteBuffer(string: "toolong"), now: t0)
        #expect(limit.serviceRead(now: t0) == .fail(.limitExceeded, token, closeReason: .limitExceeded))

        var eof = openMachine()
        _ = eof.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        _ = eof.inputClosed()
        #expect(eof.serviceRead(now: t0) == .fail(.closed, token, closeReason: nil), "end of input: a clean close")
    }

    @Test func socketReadsFollowTheReadSideAndWritability() {
        var machine = openMachine()
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true, "idle and empty: notice a peer close")
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == false, "already requested")
        _ = machine.received(ByteBuffer(string: "x"), now: t0)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == false, "buffered, nothing pending: wait")
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        machine.writabilityChanged(false, now: t0)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == false, "our output is backed up")
        machine.writabilityChanged(true, now: t0)
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true)
    }

    // MARK: Writes and closing

    @Test func writesNeedAnOpenOutput() {
        var machine = openMachine()
        #expect(machine.write(now: t0) == nil)
        #expect(machine.shutdownOutput() == nil)
        #expect(machine.write(now: t0) == .closed, "after a half-close")
        #expect(machine.shutdownOutput() == .closed)
    }

    @Test func aGracefulCloseFlushesWithinTheLinger() {
        var machine = openMachine(StreamTimeouts(closeLinger: .milliseconds(500)))
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        #expect(machine.close(reason: nil, graceful: true, now: at(10)) == .closeWhenFlushed(serviceRead: true))
        #expect(machine.state == .closing)
        #expect(machine.write(now: at(10)) == .closed)
        #expect(machine.startRead(.bytes(count: 1, partial: true), token: token, now: at(10)) == .closed)
        #expect(machine.close(reason: nil, graceful: true, now: at(11)) == .none, "idempotent")
        #expect(machine.nextDeadline == at(510))
        #expect(machine.timerFired(now: at(510)) == .close(.timedOut, graceful: false, failingUpgrade: nil))
        #expect(machine.close(reason: .timedOut, graceful: false, now: at(510)) == .closeNow(reset: false, serviceRead: false))
    }

    @Test func anAbortResetsThePeerUnlessASocketErrorClosedIt() {
        var abort = openMachine()
        #expect(abort.close(reason: nil, graceful: false, now: t0) == .closeNow(reset: true, serviceRead: false))
        var failed = openMachine()
        #expect(failed.errorCaught(.connectionReset) == .close(.connectionReset, failingUpgrade: nil))
        #expect(failed.close(reason: .connectionReset, graceful: false, now: t0) == .closeNow(reset: false, serviceRead: false))
    }

    @Test func theChannelGoingAwayResolvesTheReadThenNotifies() {
        var machine = openMachine()
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        #expect(machine.channelInactive() == .closed(serviceRead: true, failingUpgrade: nil, tellRelay: false))
        #expect(machine.serviceRead(now: t0) == .fail(.closed, token, closeReason: nil))
        #expect(machine.finish()! == (nil, nil))
        #expect(machine.finish() == nil, "the last word is said once")
        #expect(machine.state == .finished)
    }

    // MARK: Deadlines

    @Test func idleCountsFromTheLastByteEitherWay() {
        var machine = openMachine(StreamTimeouts(idle: .milliseconds(1000)))
        #expect(machine.nextDeadline == at(1000))
        _ = machine.received(ByteBuffer(string: "x"), now: at(400))
        _ = machine.write(now: at(600))
        #expect(machine.timerFired(now: at(1000)) == .none, "the deadline moved; the timer re-arms")
        #expect(machine.nextDeadline == at(1600))
        #expect(machine.timerFired(now: at(1600)) == .close(.idleTimeout, graceful: true, failingUpgrade: nil))
    }

    @Test func theReadTimeoutCountsFromTheFirstByteOfTheMessage() {
        var machine = openMachine(StreamTimeouts(idle: .seconds(60), read: .milliseconds(500)))
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        #expect(machine.serviceRead(now: t0) == .none)
        #expect(machine.nextDeadline == at(60_000), "waiting for a message that has not begun is idle, not slow")
        for tick in 1...9 {
            _ = machine.received(ByteBuffer(string: "x"), now: at(Int64(100 * tick)))
            #expect(machine.serviceRead(now: at(Int64(100 * tick))) == .none)
        }
        #expect(machine.nextDeadline == at(600), "a trickle does not push it back")
        #expect(machine.timerFired(now: at(600)) == .close(.readTimeout, graceful: true, failingUpgrade: nil))
    }

    @Test func aCompletedMessageStopsTheReadClock() {
        var machine = openMachine(StreamTimeouts(read: .milliseconds(500)))
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        _ = machine.received(ByteBuffer(string: "ab"), now: at(100))
        _ = machine.serviceRead(now: at(100))
        _ = machine.received(ByteBuffer(string: "\n"), now: at(400))
        #expect(machine.serviceRead(now: at(400)) == .deliver(ByteBuffer(string: "ab\n"), token))
        #expect(machine.nextDeadline == nil)
    }

    @Test func lifetimeEndsEvenABusyStream() {
        var machine = openMachine(StreamTimeouts(idle: .milliseconds(100), lifetime: .milliseconds(250)))
        for tick in 1...4 { _ = machine.received(ByteBuffer(string: "x"), now: at(Int64(60 * tick))) }
        #expect(machine.timerFired(now: at(250)) == .close(.lifetimeExceeded, graceful: true, failingUpgrade: nil))
    }

    @Test func aPluginReadDeadlineFailsOnlyThatRead() {
        var machine = openMachine()
        #expect(machine.setReadTimeout(.milliseconds(100)) == nil)
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: other, now: at(50))
        _ = machine.received(ByteBuffer(string: "part"), now: at(60))
        #expect(machine.serviceRead(now: at(60)) == .none)
        #expect(machine.timerFired(now: at(150)) == .failRead(other))
        #expect(machine.state == .open, "the stream stays usable")
        #expect(machine.reads.bufferedBytes == 4, "what arrived stays for the next read")
        #expect(machine.startRead(.bytes(count: 4, partial: false), token: token, now: at(160)) == nil)
        #expect(machine.serviceRead(now: at(160)) == .deliver(ByteBuffer(string: "part"), token))
    }

    @Test func closingStopsTheListenerClocks() {
        var machine = openMachine(StreamTimeouts(idle: .milliseconds(100), closeLinger: .seconds(5)))
        _ = machine.close(reason: nil, graceful: true, now: at(10))
        #expect(machine.nextDeadline == at(5010), "only the linger is left")
    }

    // MARK: Relays

    @Test func aPumpedStreamHandsItsBufferAndEndOver() {
        var machine = openMachine(StreamTimeouts(idle: .seconds(1)))
        _ = machine.received(ByteBuffer(string: "head"), now: t0)
        _ = machine.inputClosed()
        #expect(machine.relayRefusal == nil)
        machine.attachRelay(.pumpHandoff)
        #expect(machine.nextDeadline == at(1000), "the listener's idle limit holds until the socket leaves")
        #expect(machine.relayRefusal == .relayed)
        #expect(machine.startRead(.bytes(count: 1, partial: true), token: token, now: t0) == .relayed)
        #expect(machine.write(now: t0) == .relayed)
        #expect(machine.close(reason: nil, graceful: true, now: t0) == .forwardToRelay)
        let handover = machine.detachForPump()
        #expect(handover.buffered == ByteBuffer(string: "head"))
        #expect(handover.inputEnded)
        #expect(machine.nextDeadline == nil, "the pump keeps the pair's clocks")
        #expect(machine.channelInactive() == .none, "our copy of the socket closing is not the end")
        #expect(machine.pumpEnded(reason: .connectionReset) == true)
        #expect(machine.finish()! == (.connectionReset, nil))
    }

    @Test func aChannelRelayForwardsBytesAndEnds() {
        var machine = openMachine()
        machine.attachRelay(.channel)
        #expect(machine.received(ByteBuffer(string: "x"), now: t0) == .forwardToRelay(ByteBuffer(string: "x")))
        #expect(machine.shouldRequestSocketRead(partnerWritable: false) == false, "the partner is backed up")
        #expect(machine.shouldRequestSocketRead(partnerWritable: true) == true)
        #expect(machine.inputClosed() == .forwardEndToRelay)
        #expect(machine.relayShutdownOutput() == true)
        #expect(machine.relayShutdownOutput() == false, "once")
        #expect(machine.channelInactive() == .closed(serviceRead: false, failingUpgrade: nil, tellRelay: true))
    }

    /// A channel-relayed stream that closes itself (a socket error, a timeout of its own, the
    /// owner's close) still tells its relay when the channel goes, so the partner is closed too.
    @Test func aChannelRelayedStreamThatClosesItselfStillTellsTheRelay() {
        var failed = openMachine()
        failed.attachRelay(.channel)
        #expect(failed.errorCaught(.connectionReset) == .close(.connectionReset, failingUpgrade: nil))
        #expect(failed.close(reason: .connectionReset, graceful: false, now: t0) == .closeNow(reset: false, serviceRead: false))
        #expect(failed.channelInactive() == .closed(serviceRead: false, failingUpgrade: nil, tellRelay: true))
        var closed = openMachine()
        closed.attachRelay(.channel)
        #expect(closed.close(reason: .lifetimeExceeded, graceful: true, now: t0) == .closeWhenFlushed(serviceRead: false))
        #expect(closed.channelInactive() == .closed(serviceRead: false, failingUpgrade: nil, tellRelay: true))
        var unrelayed = openMachine()
        _ = unrelayed.close(reason: .connectionReset, graceful: false, now: t0)
        #expect(unrelayed.channelInactive() == .closed(serviceRead: false, failingUpgrade: nil, tellRelay: false))
    }

    /// The relay passes a partner's reset on: RST although the stream's own reason is an error,
    /// also when it was already closing gracefully.
    @Test func aResetPassedOnResetsThePeer() {
        var partner = openMachine()
        partner.attachRelay(.channel)
        #expect(partner.close(reason: .connectionReset, graceful: false, resetPeer: true, now: t0)
            == .closeNow(reset: true, serviceRead: false))
        var flushing = openMachine()
        _ = flushing.close(reason: .idleTimeout, graceful: true, now: t0)
        #expect(flushing.close(reason: .connectionReset, graceful: false, resetPeer: true, now: t0)
            == .closeNow(reset: true, serviceRead: false))
    }

    @Test func aHandOverThatFailsLeavesAnOpenStream() {
        var machine = openMachine()
        machine.attachRelay(.pumpHandoff)
        machine.relayReleased()
        #expect(machine.state == .open)
        #expect(machine.close(reason: .closed, graceful: true, now: t0) == .closeWhenFlushed(serviceRead: false))
    }

    // MARK: Draining and TLS

    @Test func aQuiescedStreamClosesWhenIdle() {
        var machine = openMachine()
        machine.quiesce()
        #expect(!machine.shouldCloseForDrain, "no read pending: the plugin is still working")
        _ = machine.startRead(.until(delimiter: [10], maxBytes: 0), token: token, now: t0)
        #expect(machine.shouldCloseForDrain)
        _ = machine.received(ByteBuffer(string: "half"), now: t0)
        #expect(!machine.shouldCloseForDrain, "a message has begun")
    }

    @Test func startTLSNeedsAnIdleStreamAndIsBoundedByTheHandshakeTimeout() {
        var machine = openMachine(StreamTimeouts(handshake: .milliseconds(300)))
        _ = machine.received(ByteBuffer(string: "x"), now: t0)
        #expect(machine.startTLS(token: token, hasUnsentWrites: false, now: t0) == .notIdle)
        var clean = openMachine(StreamTimeouts(handshake: .milliseconds(300)))
        #expect(clean.startTLS(token: token, hasUnsentWrites: true, now: t0) == .notIdle)
        #expect(clean.startTLS(token: other, hasUnsentWrites: false, now: t0) == nil)
        #expect(clean.startTLS(token: token, hasUnsentWrites: false, now: t0) == .notIdle, "one at a time")
        #expect(clean.shouldRequestSocketRead(partnerWritable: true) == true, "the handshake is read")
        #expect(clean.timerFired(now: at(300)) == .close(.timedOut, graceful: false, failingUpgrade: other))

        var done = openMachine()
        _ = done.startTLS(token: other, hasUnsentWrites: false, now: t0)
        #expect(done.tlsHandshakeCompleted(now: at(5)) == .upgraded(other))
        #expect(done.nextDeadline == nil)
    }
}
