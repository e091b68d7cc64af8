import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Chooses ports for a cluster of replica processes on one host (the demo, `sintra bench`, the process
/// tests): each replica needs its member port, its client port (`ClientPorts.offset` above) and, when
/// asked, a metrics port (twice the offset above).
///
/// The ports are taken below the kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range,
/// 32768 by default). A port probed free inside that range can be handed to any outgoing connection or
/// port-0 listener of another process before the replica binds it; the CI run lost a test to exactly that
/// ("Address already in use" while other suites opened connections). Below the range only explicit binds
/// compete, and every candidate is probed by binding it.
public enum LoopbackPorts {
    /// The lowest base port tried.
    public static let lowest = 10_000

    /// Ports this process handed out already. Parallel test suites each start clusters: two random bases
    /// can overlap, both probe free, and the second cluster to bind fails. A port handed out is never handed
    /// out again by this process (a test process uses a few hundred).
    private static let handedOut = NIOLockedValueBox(Set<Int>())

    /// A base port such that the member, client and metrics ports of `replicas` replicas are all free now
    /// and were not handed out before by this process.
    public static func findBase(replicas: Int, attempts: Int = 500) -> Int? {
        let span = 2 * ClientPorts.offset + replicas
        let highest = ephemeralLow() - span
        guard highest > lowest else { return nil }
        for _ in 0..<attempts {
            let base = Int.random(in: lowest...highest)
            let candidates = ports(base: base, replicas: replicas)
            let reserved = handedOut.withLockedValue { taken in
                guard candidates.allSatisfy({ !taken.contains($0) }) else { return false }
                taken.formUnion(candidates)
                return true
            }
            guard reserved else { continue }
            if candidates.allSatisfy(isFree) { return base }
        }
        return nil
    }

    /// Every port a cluster at `base` uses: member, client and metrics port of each replica.
    public static func ports(base: Int, replicas: Int) -> [Int] {
        (0..<replicas).flatMap { [base + $0, base + $0 + ClientPorts.offset, base + $0 + 2 * ClientPorts.offset] }
    }

    /// The metrics port of replica `index` (1-based) in a cluster at `base`.
    public static func metricsPort(base: Int, index: Int) -> Int { base + index - 1 + 2 * ClientPorts.offset }

    /// The first port of the kernel's ephemeral range (32768 when it cannot be read).
    public static func ephemeralLow() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
              let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first,
              let low = Int(first), low > 1024 else { return 32_768 }
        return low
    }

    /// Whether a TCP socket can bind `port` on 127.0.0.1 right now.
    public static func isFree(_ port: Int) -> Bool {
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }
}
