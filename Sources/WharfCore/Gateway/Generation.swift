/// The plugin instances built from one config: for every configured instance name, one
/// `PluginInstance` per event loop. Connections keep the generation that accepted them, so
/// a later reload can build a new generation beside this one and let this one drain.
public final class Generation: Sendable {
    public let number: Int
    public let config: GatewayConfig
    /// `instances[name][loopIndex]`
    let instances: [String: [PluginInstance]]

    init(number: Int, config: GatewayConfig, instances: [String: [PluginInstance]]) {
        self.number = number
        self.config = config
        self.instances = instances
    }

    /// Loads every plugin library (each file once, shared by its instances) and runs each
    /// instance's init for every loop in `loops` (with none, once, to validate the config
    /// only). On any failure, instances already created are shut down and the error names
    /// the plugin and the reason.
    static func build(number: Int, config: GatewayConfig, loops: [PluginLoop],
                      metrics: PluginMetricsRegistry? = nil) throws(PluginLoadError) -> Generation {
        let locator = PluginLocator(pluginDirectories: config.pluginDirectories, baseDirectory: config.baseDirectory)
        var libraries: [String: PluginLibrary] = [:]
        var instances: [String: [PluginInstance]] = [:]
        do throws(PluginLoadError) {
            for plugin in config.plugins {
                let path = try locator.resolve(plugin.path)
                let library: PluginLibrary
                if let loaded = libraries[path] {
                    library = loaded
                } else {
                    library = try PluginLibrary.load(path: path)
                    libraries[path] = library
                }
                // The host checks the config first when the plugin declares its keys.
                let config: (json: String, values: [String: PluginConfigValue]?)
                do throws(ConfigError) {
                    config = try library.initConfig(plugin.config, at: plugin.configLocation,
                                                    path: "plugins.\(plugin.name).config")
                } catch {
                    throw PluginLoadError(path: library.path, schemaError: error)
                }
                var perLoop: [PluginInstance] = []
                for pluginLoop in loops.isEmpty ? [nil] : loops.map(Optional.some) {
                    do throws(PluginLoadError) {
                        perLoop.append(try PluginInstance(name: plugin.name, library: library, configJSON: config.json,
                                                          config: config.values, pluginLoop: pluginLoop,
                                                          loopCount: max(1, loops.count), metrics: metrics))
                    } catch {
                        perLoop.forEach { $0.endAndShutdown() }
                        // A refusal by the plugin's init is about its `config:`: say where it is.
                        var located = error
                        if located.configKey != nil, !located.bySchema { located.location = plugin.configLocation }
                        throw located
                    }
                }
                instances[plugin.name] = perLoop
            }
        } catch {
            instances.values.joined().forEach { $0.endAndShutdown() }
            throw error
        }
        return Generation(number: number, config: config, instances: instances)
    }

    func instance(named name: String, loopIndex: Int) -> PluginInstance? {
        instances[name]?[loopIndex]
    }

    /// The places on `loopIndex`'s loop of every instance (for ending their loop-level work).
    func seats(onLoop loopIndex: Int) -> [LoopSeat] {
        instances.values.compactMap { $0.indices.contains(loopIndex) ? $0[loopIndex].seat : nil }
    }

    /// Runs every instance's shutdown hook. Only when none of their streams is live and
    /// their loop-level work has ended.
    func shutdownInstances() {
        for plugin in config.plugins {
            instances[plugin.name]?.forEach { $0.shutdown() }
        }
    }
}
