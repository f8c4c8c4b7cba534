// Reads an Ogg Opus file with prism-media's OggDemuxer, as @discordjs/voice
// does for StreamType.OggOpus, and prints how many Opus packets it gave
// after the OpusHead and OpusTags. Any error exits 1.
const fs = require('fs');
const prism = require('prism-media');

const demuxer = new prism.opus.OggDemuxer();
let packets = 0;
let head = false;
let tags = false;
demuxer.on('head', () => { head = true; });
demuxer.on('tags', () => { tags = true; });
demuxer.on('data', () => { packets++; });
demuxer.on('error', (err) => { console.error(String(err)); process.exit(1); });
demuxer.on('end', () => {
  if (!head || !tags) {
    console.error(`OpusHead seen: ${head}, OpusTags seen: ${tags}`);
    process.exit(1);
  }
  console.log(packets);
});
fs.createReadStream(process.argv[2]).pipe(demuxer);
