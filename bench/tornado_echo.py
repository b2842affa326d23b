"""The seed's echo server (tornado.tcpserver docs), for the benchmark comparison:
read_until(b"\n"), write the line back. Prints "listening PORT" once bound (0: any)."""
import sys

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer


class EchoServer(TCPServer):
    async def handle_stream(self, stream, address):
        while True:
            try:
                data = await stream.read_until(b"\n")
                await stream.write(data)
            except StreamClosedError:
                break


def main():
    sockets = bind_sockets(int(sys.argv[1]) if len(sys.argv) > 1 else 0, "127.0.0.1", backlog=4096)
    EchoServer().add_sockets(sockets)
    print("listening", sockets[0].getsockname()[1], flush=True)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
