import NIOConcurrencyHelpers

/// Counters of what a `ReplicaNetwork` saw, for logs, metrics and tests. Each counts events since start.
public struct NetworkStatistics: Sendable, Equatable {
    /// TLS handshakes refused because the peer's key was not the pinned key of the expected member.
    public var refusedHandshakes = 0
    /// Connections closed because the peer sent an oversized or unparsable record.
    public var malformedRecords = 0
    /// Connections closed because the peer broke the link protocol (see `LinkProtocolError.violation`).
    public var protocolViolations = 0
    /// Connections closed for other errors (TLS failures, resets, timeouts).
    public var connectionErrors = 0
    /// Accepted connections closed because TLS and the hello did not finish within
    /// `ReplicaNetwork.Options.handshakeTimeout`.
    public var handshakeTimeouts = 0
    /// Connections refused because `ReplicaNetwork.Options.inboundConnectionsMax` were open.
    public var refusedConnections = 0
    /// Outbound links established (the first one and every reconnect).
    public var linksEstablished = 0
    /// Frames written again on a new connection because the previous one closed before they were
    /// acknowledged.
    public var framesResent = 0
    /// Data records received again after a reconnect and dropped (already delivered).
    public var duplicateFrames = 0
    /// Frames not delivered because the inbound stream was full; the connection was closed so that the
    /// sender sends them again later.
    public var inboundOverflows = 0

    public init() {}
}

/// The shared, locked counters.
final class NetworkStatisticsBox: Sendable {
    private let counters = NIOLockedValueBox(NetworkStatistics())

    func record(_ counter: WritableKeyPath<NetworkStatistics, Int>, count: Int = 1) {
        counters.withLockedValue { $0[keyPath: counter] += count }
    }

    var snapshot: NetworkStatistics {
        counters.withLockedValue { $0 }
    }
}
