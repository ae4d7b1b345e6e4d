import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

@testable import ReservoirCommand

@Suite("Advice report")
struct AdviceReportTests {
    final class ElementCounter: NSObject, XMLParserDelegate {
        var counts: [String: Int] = [:]
        var texts: [String] = []
        func parser(
            _ parser: XMLParser,
            didStartElement elementName: String,
            namespaceURI: String?,
            qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            counts[elementName, default: 0] += 1
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) {
            texts.append(string)
        }
    }

    @Test("the SVG is well-formed and draws every measured point and the recommendation")
    func wellFormed() throws {
        let model = ScalabilityModel(singleClientThroughput: 8_000, contention: 0.03, coherency: 0.003)
        let points = ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32])
        let advice = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 100, reservedConnections: 3, instances: 2)
        )
        let svg = AdviceReport.svg(advice, title: "select 1 & <friends>")
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = ElementCounter()
        parser.delegate = counter
        #expect(parser.parse())
        // Throughput points, p50 points and p99 points, plus two legend dots per panel.
        #expect(counter.counts["circle"] == points.count * 3 + 3)
        let text = counter.texts.joined()
        #expect(text.contains("recommended total \(advice.recommendedTotal)"))
        #expect(text.contains("select 1 & <friends>"))
        #expect(text.contains("peak"))
    }
}
