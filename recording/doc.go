// Package recording records the terminal and port-forward sessions that pass through the front
// proxy: it masks what a terminal shows, writes it as asciicast v3 with its timing, and publishes
// it in hash-chained chunks on NATS JetStream as the session goes on.
//
// # Format
//
// A terminal session (exec, attach) is recorded as asciicast v3
// (docs.asciinema.org/manual/asciicast/v3): a header line, then one event per line, [interval,
// code, data], with the codes o (stdout), i (stdin), r (resize, "COLSxROWS"), m (marker) and x
// (exit status). Gatehouse adds e for stderr, which players ignore; [ToStandard] turns it into o
// for asciinema and asciinema-player. A port-forward session is recorded as one JSON object per
// connection event (opened, closed, with its port and byte counts), never the forwarded bytes.
//
// # Chunks
//
// A [Writer] sends a recording in chunks (trail.Recording) of at most
// PublisherOptions.ChunkBytes, or after at most FlushInterval, in order, each stored by JetStream
// (with its ID as message ID, so a retry is stored once) before more than Window chunks wait. A
// proxy that stops therefore loses at most the chunk it was filling; the request's open trail
// record and the recording without a final chunk show the session as cut off. The first chunk is
// stored before the session starts: a session that cannot be recorded is refused. Each chunk's
// hash covers its content and the hash of the chunk before it (trail.VerifyChain).
//
// # Masking
//
// A [LiveMasker] masks a command's output on its way to the client, keeping the context of the
// current line across frames, and holding a partial line back only briefly (10ms by default), or
// not at all when it is the echo of what was just typed, so that interactive shells stay
// responsive. A [Terminal] masks what it records once more, line by line. Both mask with a
// [Masker]: the text detectors of package masking, and the [Values] of the Secrets the session
// read through the proxy, so that `cat` of a mounted Secret prints the placeholder the API showed.
//
// # Threat model
//
// The recording and the client's output must not hold a secret the detectors recognise or a
// value of a Secret the session read. What masking cannot stop: a user who may exec into a
// container can print any secret it holds in a form no detector knows (encoded, reversed, a byte
// at a time with pauses); RBAC and policies on exec are the defence. Values are kept in memory
// only, per session, bounded, and never printed or logged.
package recording
