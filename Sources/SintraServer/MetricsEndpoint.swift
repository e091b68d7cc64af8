import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal plain-HTTP server for Prometheus scrapes: `GET /metrics` answers the Prometheus text
/// exposition of a `ReplicaMetrics`; anything else gets 404 (other paths) or 405 (other methods).
///
/// Plain HTTP because metrics reveal no secrets and Prometheus scrapes plain HTTP by default; it binds to
/// loopback unless told otherwise. Bounded: at most `connectionsMax` connections, one request each
/// (`Connection: close`), request heads limited by NIO's HTTP parser, request bodies dropped.
public final class MetricsEndpoint: Sendable {
    /// Connections open at once; more are closed on accept.
    public static let connectionsMax = 16

    private let metrics: ReplicaMetrics
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let server = NIOLockedValueBox<Channel?>(nil)
    private let connections = NIOLockedValueBox(0)
    private let logger: Logger

    public init(metrics: ReplicaMetrics, logger: Logger = Logger(label: "sintra.metrics")) {
        self.metrics = metrics
        self.logger = logger
    }

    /// The bound port, once started.
    public var port: Int? { server.withLockedValue { $0?.localAddress?.port } }

    /// Binds `host:port` (port 0: any free port).
    public func start(host: String = "127.0.0.1", port: Int) async throws {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                let admitted = connections.withLockedValue { open in
                    guard open < Self.connectionsMax else { return false }
                    open += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { [self] _ in connections.withLockedValue { $0 -= 1 } }
                return channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(MetricsRequestHandler(metrics: self.metrics))
                }
            }
            .bind(host: host, port: port)
            .get()
        server.withLockedValue { $0 = channel }
        let address = "http://\(host):\(channel.localAddress?.port ?? 0)/metrics"
        logger.info("serving metrics", metadata: ["address": "\(address)"])
    }

    public func shutdown() async {
        if let channel = server.withLockedValue({ $0 }) { try? await channel.close() }
        try? await group.shutdownGracefully()
    }
}

private final class MetricsRequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: ReplicaMetrics
    /// The request head, kept until its end arrives (touched on the channel's event loop only).
    private var head: HTTPRequestHead?

    init(metrics: ReplicaMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
        case .body:
            break
        case .end:
            guard let requestHead = head else { return }
            head = nil
            respond(to: requestHead, context: context)
        }
    }

    private func respond(to requestHead: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = requestHead.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard requestHead.method == .GET else {
            write(status: .methodNotAllowed, body: Array("only GET\n".utf8), context: context)
            return
        }
        guard path == "/metrics" else {
            write(status: .notFound, body: Array("see /metrics\n".utf8), context: context)
            return
        }
        let metrics = self.metrics
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        Task {
            let body = await metrics.render()
            loop.execute {
                let (handler, context) = bound.value
                handler.write(status: .ok, body: body, context: context)
            }
        }
    }

    private func write(status: HTTPResponseStatus, body: [UInt8], context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
