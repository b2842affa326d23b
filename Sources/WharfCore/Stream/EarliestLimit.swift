/// The tighter of two optional limits (an idle timeout, a deadline): nil only when neither
/// is set. Relays combine their own limit with each stream's once per connection, and
/// `[a, b].compactMap { $0 }.min()` built two arrays there each time.
func earliest<Limit: Comparable>(_ a: Limit?, _ b: Limit?) -> Limit? {
    guard let a else { return b }
    guard let b else { return a }
    return min(a, b)
}
