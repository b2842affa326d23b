/// The config `wharf run` serves when no `--config` is given: the three seed services on
/// loopback. `etc/wharf.yaml` is the same file, kept in sync by a test.
public enum DefaultConfig {
    public static let fileName = "<embedded default config>"

    public static let text = """
        # Wharf's embedded default: the three seed services on 127.0.0.1, and the admin
        # endpoint (health, metrics, status page) on http://127.0.0.1:9901/.
        admin: {address: 127.0.0.1, port: 9901}
        plugins:
          reverse:
            path: reverse
          echo:
            path: echo
            config: {max_bytes: 65536}
          separator_echo:
            path: separator_echo
            config: {separator: "\\r\\n\\r\\n", max_bytes: 1048576}
        listeners:
          - {address: 127.0.0.1, port: 8888, plugin: reverse}
          - {address: 127.0.0.1, port: 8889, plugin: echo}
          - {address: 127.0.0.1, port: 8060, plugin: separator_echo}

        """
}
