"""A small SMTP server for the tests (RFC 5321 subset: EHLO/HELO, MAIL, RCPT,
DATA with dot-unstuffing, RSET, NOOP, QUIT) recording every accepted message
as raw bytes — the notifier's e-mails go through a real SMTP conversation."""
import email
import email.policy
import socketserver
import threading


class SmtpSink:
    def __init__(self):
        self.messages = []  # {"from", "to": [...], "data": bytes}
        self.lock = threading.Lock()
        sink = self

        class H(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self):
                self.reply("220 sink ESMTP")
                mail_from, rcpt = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode("ascii", "replace").strip()
                    verb = cmd[:4].upper()
                    if verb == "EHLO":
                        self.wfile.write(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                        self.wfile.flush()
                    elif verb == "HELO":
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        mail_from, rcpt = cmd[10:].strip(), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        rcpt.append(cmd[8:].strip())
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with .")
                        data = []
                        while True:
                            l = self.rfile.readline()
                            if not l or l in (b".\r\n", b".\n"):
                                break
                            data.append(l[1:] if l.startswith(b"..") else l)
                        with sink.lock:
                            sink.messages.append({"from": mail_from, "to": rcpt,
                                                  "data": b"".join(data)})
                        self.reply("250 queued")
                    elif verb == "RSET":
                        mail_from, rcpt = None, []
                        self.reply("250 OK")
                    elif verb == "NOOP":
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), H)
        self.url = "smtp://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def parsed(self):
        """The messages as email.message.EmailMessage (policy default)."""
        with self.lock:
            raw = [m["data"] for m in self.messages]
        return [email.message_from_bytes(r, policy=email.policy.default) for r in raw]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
