import Foundation

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with
/// its HTTP status. Nothing a client sends ends the server: every bad request becomes one of these.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public let status: Int
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?
    /// Seconds a client should wait before trying again (503).
    public var retryAfter: Int?

    public init(status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code
    }

    /// A field with a wrong value or type (400).
    public static func invalid(_ param: String, _ message: String) -> APIError {
        APIError(status: 400, message, param: param, code: "invalid_value")
    }

    public var description: String { message }

    public var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": param.map { $0 as Any } ?? NSNull(), "code": code.map { $0 as Any } ?? NSNull()]]
    }
}
