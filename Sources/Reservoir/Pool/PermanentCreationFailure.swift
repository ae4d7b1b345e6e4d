/// An error a resource factory throws when creating a resource again cannot succeed until something changes
/// elsewhere: a wrong password, an unknown user, a missing database.
///
/// The pool retries failed creations on its backoff, and opens its circuit breaker after
/// ``ResourcePoolConfiguration/circuitBreakerThreshold`` consecutive failures. A failure whose error conforms and says
/// ``isPermanent`` opens the breaker at once (when a threshold is configured and no resource is open): waiters fail
/// fast with the error as the underlying cause instead of waiting out retries that cannot succeed. The breaker keeps
/// probing and closes at the first success, as for any failure.
public protocol PermanentCreationFailure: Error {
    /// Whether retrying the creation cannot succeed without a change elsewhere.
    var isPermanent: Bool { get }
}
