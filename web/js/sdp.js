// Edits to the publish offer's SDP before it is set as the local description.

const OPUS_RTPMAP = /^a=rtpmap:(\d+) opus\/48000/i;

/**
 * The SDP with `usedtx=1` on every Opus `a=fmtp` line (discontinuous transmission: a muted
 * or silent microphone sends almost nothing). Lines that already say usedtx are kept as is.
 */
export function withOpusDtx(sdp) {
  const lines = sdp.split("\r\n");
  const opus = new Set();
  for (const line of lines) {
    const match = OPUS_RTPMAP.exec(line);
    if (match) opus.add(match[1]);
  }
  return lines.map((line) => {
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (!fmtp || !opus.has(fmtp[1]) || /(^|;)\s*usedtx=/.test(fmtp[2])) return line;
    return `${line};usedtx=1`;
  }).join("\r\n");
}
