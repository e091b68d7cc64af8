import NIOConcurrencyHelpers
import SintraNetwork

/// The frames received and not yet handled, taken by the node in batches (group commit, docs/DURABILITY.md
/// stage 2): a pump task moves frames from the network's stream into the inbox and wakes the node once;
/// the node handles every frame waiting, commits what they changed in one transaction, and only then sends.
/// Under load the batches grow by themselves (frames that come during one commit form the next batch), so
/// the number of commits per second stays near what the disk allows, however many messages a round has.
///
/// Bounded: when `capacity` frames wait, the pump stops taking frames from the network's stream until the
/// node took them, so the stream's own bound (and the links' backpressure behind it) applies again.
final class FrameInbox: Sendable {
    private struct State {
        var frames: [ReceivedFrame] = []
        /// A drain is scheduled or running and has not taken the frames yet.
        var scheduled = false
        /// The pump, waiting for room.
        var waiter: CheckedContinuation<Void, Never>?
    }

    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Adds a frame; returns true if the caller must schedule a drain (none is pending).
    func put(_ frame: ReceivedFrame) -> Bool {
        state.withLockedValue { state in
            state.frames.append(frame)
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
    }

    /// Frames waiting to be taken.
    var count: Int { state.withLockedValue { $0.frames.count } }

    /// Waits until fewer than `capacity` frames wait.
    func waitForRoom() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { state -> Bool in
                if state.frames.count < capacity { return true }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Takes every waiting frame (the next `put` schedules a new drain) and lets a waiting pump go on.
    func take() -> [ReceivedFrame] {
        let (frames, waiter) = state.withLockedValue { state in
            let frames = state.frames
            state.frames = []
            state.scheduled = false
            let waiter = state.waiter
            state.waiter = nil
            return (frames, waiter)
        }
        waiter?.resume()
        return frames
    }

    /// Lets a waiting pump go (at shutdown).
    func release() {
        state.withLockedValue { state in
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }?.resume()
    }
}
