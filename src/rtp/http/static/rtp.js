// rtp.js placeholder
