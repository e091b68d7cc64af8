#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One row of the comparison: an operation done by Sintra and, where libsodium has it, by libsodium.
///
/// Each closure performs the operation `iterations` times over a fixed pool of inputs, so that the time of a
/// closure call is spread over many operations and the per-operation figure contains no call overhead.
struct Comparison {
    var name: String
    var sintra: (_ iterations: Int) -> Void
    var libsodium: ((_ iterations: Int) -> Void)?
}

/// The median per-operation times of one row, in microseconds.
struct ComparisonResult {
    var name: String
    var sintraMicroseconds: Double
    var libsodiumMicroseconds: Double?
    /// Sintra's time over libsodium's, below 1 when Sintra is faster: the median over repetitions of the ratio
    /// of the two batches timed back to back. Pairing adjacent batches cancels load that drifts over the run,
    /// which the ratio of the two medians would not.
    var ratio: Double?
}

/// Sink for results, so that the optimiser cannot drop an operation whose output is otherwise unused.
nonisolated(unsafe) var checksum: UInt8 = 0

@inline(__always)
func consume(_ bytes: [UInt8]) {
    checksum ^= bytes[0]
}

@inline(__always)
func consume(_ byte: UInt8) {
    checksum ^= byte
}

/// A byte of a value's memory: a way to consume a decoded element without paying for an encoding or a
/// comparison inside the timed loop.
@inline(__always)
func firstByte<Value>(of value: Value) -> UInt8 {
    withUnsafeBytes(of: value) { $0[0] }
}

/// Which clock times a batch.
enum TimeSource: String {
    /// Elapsed real time: what a caller waits, including any time the thread was not running.
    case wall
    /// CPU time of the measuring thread only: robust when other processes compete for the cores (a time slice
    /// given to another process is not counted), at the price of hiding waits that belong to the operation.
    case thread

    /// Microseconds of `body` by this clock.
    func microseconds(_ body: () -> Void) -> Double {
        switch self {
        case .wall:
            let (seconds, attoseconds) = ContinuousClock().measure(body).components
            return Double(seconds) * 1e6 + Double(attoseconds) / 1e12
        case .thread:
            var start = timespec()
            var end = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
            body()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &end)
            return Double(end.tv_sec - start.tv_sec) * 1e6 + Double(end.tv_nsec - start.tv_nsec) / 1e3
        }
    }
}

/// Times batches of Sintra and libsodium interleaved, and takes the median of the repetitions.
struct Runner {
    /// How long one timed batch should take; longer batches average out more noise.
    var batchMilliseconds: Double
    /// How many timed batches per side; the median is reported.
    var repetitions: Int
    /// The clock.
    var timeSource: TimeSource
    /// A fixed number of operations per batch instead of calibrating to `batchMilliseconds`; for runs under an
    /// instruction counter (valgrind), where time means nothing.
    var fixedIterations: Int?

    private func microseconds(_ body: () -> Void) -> Double {
        timeSource.microseconds(body)
    }

    /// Runs `body` on growing batches until one takes a tenth of the target, then scales to the target. This
    /// also warms caches, the branch predictor and lazily built tables before anything is timed.
    private func calibrate(_ body: (Int) -> Void) -> Int {
        if let fixedIterations {
            return fixedIterations
        }
        var iterations = 1
        while true {
            let elapsed = microseconds { body(iterations) }
            if elapsed >= batchMilliseconds * 100 || iterations >= 1 << 24 {
                let perOperation = elapsed / Double(iterations)
                return max(1, Int(batchMilliseconds * 1000 / perOperation))
            }
            iterations *= 2
        }
    }

    func run(_ comparison: Comparison) -> ComparisonResult {
        let sintraIterations = calibrate(comparison.sintra)
        let libsodiumIterations = comparison.libsodium.map(calibrate) ?? 0
        var sintraTimes: [Double] = []
        var libsodiumTimes: [Double] = []
        for repetition in 0..<repetitions {
            // Alternating which side goes first keeps a slow drift of the machine (frequency, a neighbour's
            // build) from favouring one side.
            let sintraFirst = repetition % 2 == 0
            func timeSintra() {
                let elapsed = microseconds { comparison.sintra(sintraIterations) }
                sintraTimes.append(elapsed / Double(sintraIterations))
            }
            func timeLibsodium() {
                guard let libsodium = comparison.libsodium else { return }
                let elapsed = microseconds { libsodium(libsodiumIterations) }
                libsodiumTimes.append(elapsed / Double(libsodiumIterations))
            }
            if sintraFirst {
                timeSintra()
                timeLibsodium()
            } else {
                timeLibsodium()
                timeSintra()
            }
        }
        let pairedRatios = zip(sintraTimes, libsodiumTimes).map { $0 / $1 }
        return ComparisonResult(
            name: comparison.name,
            sintraMicroseconds: median(sintraTimes),
            libsodiumMicroseconds: libsodiumTimes.isEmpty ? nil : median(libsodiumTimes),
            ratio: pairedRatios.isEmpty ? nil : median(pairedRatios))
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
