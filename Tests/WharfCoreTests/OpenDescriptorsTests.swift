import Testing
@testable import WharfCore

struct OpenDescriptorsTests {
    @Test func holdsUpToTwoInOrder() {
        var open = OpenDescriptors()
        #expect(Array(open).isEmpty)
        open.append(7)
        #expect(Array(open) == [7])
        open.append(3)
        #expect(Array(open) == [7, 3])
        #expect(open == [7, 3])
        #expect(open != [3, 7])
    }
}
