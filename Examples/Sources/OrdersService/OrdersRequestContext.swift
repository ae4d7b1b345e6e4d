import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// What the service's routes need from a request context: who the client is.
protocol OrdersRequestContextProtocol: RequestContext {
    /// The client's address without the port, or `nil` when the channel has none.
    var remoteHost: String? { get }
}

extension OrdersRequestContextProtocol {
    /// The key the per-client rate limit is kept under: the `X-Client-ID` header when present (trimmed, at most 64
    /// characters), otherwise the remote address.
    func clientKey(for request: Request) -> String {
        if let field = HTTPField.Name("X-Client-ID"), let value = request.headers[field]?.trimmingWhitespace,
            !value.isEmpty
        {
            return "id:" + value.prefix(64)
        }
        return "address:" + (remoteHost ?? "unknown")
    }
}

/// The request context of the orders service: Hummingbird's basic context plus the remote address.
public struct OrdersRequestContext: OrdersRequestContextProtocol {
    /// Hummingbird's per-request storage (logger, parameters, allocator).
    public var coreContext: CoreRequestContextStorage
    let remoteHost: String?

    /// Creates the context for a request arriving on `source`'s channel.
    ///
    /// - Parameter source: the channel and logger Hummingbird hands every request.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteHost = source.channel.remoteAddress?.ipAddress
    }
}

/// JSON responses with the service's error shape, `{"error": "…"}`.
enum APIResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// A JSON body.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// An error body, with `Retry-After` when given.
    static func error(_ status: HTTPResponse.Status, _ message: String, retryAfterSeconds: Int? = nil) -> Response {
        var response = json(["error": message], status: status)
        if let retryAfterSeconds {
            response.headers[.retryAfter] = "\(retryAfterSeconds)"
        }
        return response
    }

    /// The answer when the service sheds a request: 503 with `Retry-After: 1`.
    static func overloaded(reason: String) -> Response {
        error(.serviceUnavailable, "the service is at capacity (\(reason)); retry later", retryAfterSeconds: 1)
    }
}
