import Foundation
import Synchronization

/// One `initdb` per process: the first server of a kind initialises a template cluster, every server copies it.
///
/// `initdb` costs about 0.7 s of CPU (1.1 s wall on a loaded two-core machine); copying its result with `cp -a` costs
/// about a third of that. Templates are keyed by everything `initdb` depends on here: the server programs, the user
/// they run as, the superuser's name and the parent folder. A template is never started, only copied. It lives
/// until the process exits; its watchdog deletes it then. A failed `initdb` is not cached: the next start tries again.
final class TemplateClusters: Sendable {
    static let shared = TemplateClusters()

    struct Key: Hashable, Sendable {
        var binaryDirectory: String
        var launcher: Cluster.Launcher
        var superuser: String
        var parentDirectory: String
    }

    /// A template cluster; holding it keeps its watchdog (and so its folder) alive.
    final class Template: Sendable {
        let directory: String
        let watchdog: Watchdog

        var dataDirectory: String { directory + "/data" }

        init(directory: String, watchdog: Watchdog) {
            self.directory = directory
            self.watchdog = watchdog
        }
    }

    private let templates = Mutex<[Key: Task<Template, any Error>]>([:])

    /// The template for `cluster`'s kind, made on first use. Concurrent callers share one `initdb`.
    ///
    /// - Throws: ``PostgresTestServerError`` when `initdb` fails (with its output's tail).
    func template(for cluster: Cluster) async throws -> Template {
        let key = Key(
            binaryDirectory: cluster.binaries.directory,
            launcher: cluster.launcher,
            superuser: cluster.configuration.user,
            parentDirectory: try Cluster.parentDirectory(configuration: cluster.configuration)
        )
        let task: Task<Template, any Error> = templates.withLock { templates in
            if let existing = templates[key] { return existing }
            // Unstructured: a cancelled first caller must not fail the template for everyone else.
            let created = Task { try await Self.make(for: cluster) }
            templates[key] = created
            return created
        }
        do {
            return try await task.value
        } catch {
            templates.withLock { templates in
                if templates[key] == task { templates[key] = nil }
            }
            throw error
        }
    }

    private static func make(for cluster: Cluster) async throws -> Template {
        let (directory, watchdog) = try await Cluster.makeWatchedDirectory(
            configuration: cluster.configuration,
            launcher: cluster.launcher,
            prefix: "reservoir-postgres-template-"
        )
        do {
            try await Cluster.runInitdb(
                binaries: cluster.binaries,
                launcher: cluster.launcher,
                environment: cluster.serverEnvironment,
                user: cluster.configuration.user,
                dataDirectory: directory + "/data",
                logPath: directory + "/initdb.log"
            )
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            await watchdog.releaseAndWait()
            throw error
        }
        return Template(directory: directory, watchdog: watchdog)
    }
}
