import LibsodiumReference

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Times each Sintra operation and its libsodium counterpart interleaved in one process and prints a Markdown
// table of median microseconds per operation and the median ratio Sintra / libsodium of back-to-back batches.
// A second table compares Pippenger's and Straus's multi-scalar multiplication inside Sintra
// (MethodComparisons.swift).
// Usage: crypto-compare [--batch-milliseconds M] [--repetitions R] [--filter TEXT] [--clock wall|thread]
//                       [--iterations N]

// Short batches and many repetitions: a pair of back-to-back batches then sees nearly the same machine load.
var batchMilliseconds = 10.0
var repetitions = 41
var filter: String?
var timeSource = TimeSource.wall
var fixedIterations: Int?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--batch-milliseconds":
        guard let value = arguments.popFirst().flatMap({ Double($0) }), value > 0 else { exit(2) }
        batchMilliseconds = value
    case "--repetitions":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 else { exit(2) }
        repetitions = value
    case "--filter":
        filter = arguments.popFirst()
    case "--iterations":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 else { exit(2) }
        fixedIterations = value
    case "--clock":
        guard let value = arguments.popFirst().flatMap({ TimeSource(rawValue: $0) }) else { exit(2) }
        timeSource = value
    default:
        print("usage: crypto-compare [--batch-milliseconds M] [--repetitions R] [--filter TEXT] [--clock wall|thread] "
            + "[--iterations N]")
        exit(2)
    }
}

let sodium: Libsodium
do {
    sodium = try Libsodium()
} catch {
    print("crypto-compare: \(error)")
    exit(2)
}

let fixture = Fixture(sodium: sodium)
var comparisons = groupComparisons(fixture) + scalarComparisons(fixture) + thresholdComparisons(fixture)
    + signatureComparisons(fixture)
var methodRows = methodComparisons()
if let filter {
    comparisons = comparisons.filter { $0.name.contains(filter) }
    methodRows = methodRows.filter { $0.comparison.name.contains(filter) }
}
let runner = Runner(
    batchMilliseconds: batchMilliseconds, repetitions: repetitions, timeSource: timeSource,
    fixedIterations: fixedIterations)

print("Sintra against libsodium \(sodium.version) (\(sodium.path)); median of \(repetitions) interleaved batches "
    + "of about \(batchMilliseconds) ms per side, \(timeSource.rawValue) clock")
if let load = loadAverage() {
    print("load average before the run: \(load)")
}
print("")
print("| operation | Sintra µs | libsodium µs | ratio |")
print("| --- | ---: | ---: | ---: |")
for comparison in comparisons {
    let result = runner.run(comparison)
    let libsodiumColumn = result.libsodiumMicroseconds.map { format($0, decimals: 2) } ?? "—"
    let ratioColumn = result.ratio.map { format($0, decimals: 2) + "×" } ?? "—"
    let sintraColumn = format(result.sintraMicroseconds, decimals: 2)
    print("| \(result.name) | \(sintraColumn) | \(libsodiumColumn) | \(ratioColumn) |")
    fflush(nil)  // Flushes every stream, so each row appears as soon as it is measured.
}
if !methodRows.isEmpty {
    print("")
    print("Multi-scalar methods inside Sintra (new / old: Pippenger or the automatic choice against Straus)")
    print("")
    print("| operation | new µs | old µs | new / old |")
    print("| --- | ---: | ---: | ---: |")
    for row in methodRows {
        let result = runner.run(row.comparison)
        let new = format(result.sintraMicroseconds / row.divisor, decimals: 2)
        let old = result.libsodiumMicroseconds.map { format($0 / row.divisor, decimals: 2) } ?? "—"
        let ratio = result.ratio.map { format($0, decimals: 2) + "×" } ?? "—"
        print("| \(row.comparison.name) | \(new) | \(old) | \(ratio) |")
        fflush(nil)
    }
}
print("")
print("checksum \(checksum) (printed so that no timed result is optimised away)")

/// The first line of /proc/loadavg where it exists (Linux), to record how busy the machine was.
func loadAverage() -> String? {
    guard let file = fopen("/proc/loadavg", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 128)
    guard fgets(&line, Int32(line.count), file) != nil else { return nil }
    let bytes = line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Fixed-point formatting without Foundation.
func format(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    var fraction = String(scaled % Int(scale))
    fraction = String(repeating: "0", count: max(0, decimals - fraction.count)) + fraction
    return decimals == 0 ? String(whole) : "\(whole).\(fraction)"
}
