/// `wharf check`: everything startup does except binding and serving.
public enum ConfigCheck {
    public static func validate(_ config: GatewayConfig) throws(PluginLoadError) {
        let generation = try Generation.build(number: 0, config: config, loops: [])
        generation.shutdownInstances()
    }
}
