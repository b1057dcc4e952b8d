// Starts kinesalite (a Kinesis-compatible server) on 127.0.0.1 and prints its port.
// Usage: node kinesalite.js NODE_MODULES_DIR [PORT] [PARENT_PID]
// With PARENT_PID, the server exits when that process is gone, so a test binary that
// started it never leaves it behind.
const modules = process.argv[2];
const port = Number(process.argv[3] || 0);
const parent = Number(process.argv[4] || 0);
const kinesalite = require(modules + '/kinesalite');
const server = kinesalite({ createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 1000 });
server.listen(port, '127.0.0.1', () => console.log(server.address().port));
if (parent) {
  setInterval(() => {
    try { process.kill(parent, 0); } catch (e) { process.exit(0); }
  }, 1000);
}
