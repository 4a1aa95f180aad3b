"""A tiny RTSP camera for tests and benchmarks, built on GStreamer's RTSP server.

Run with Debian's /usr/bin/python3 (it has python3-gi), not the venv; `bash .ci/system-deps.sh` installs
what it needs:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --jpeg frame.jpg [--no-audio | --audio-wav a.wav]
                                          [--user U --password P]

Serves rtsp://127.0.0.1:PORT/cam: the still JPEG (or a test pattern) re-encoded as a 5 fps MJPEG/RTP
stream plus, unless --no-audio, a G.711 mu-law 8 kHz audio track like a cheap camera's. One shared
media, so several clients can connect at once. Prints READY on stdout once it listens.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

NEEDED_ELEMENTS = [
    *("filesrc", "multifilesrc", "jpegdec", "jpegenc", "imagefreeze", "videotestsrc", "videoconvert", "rtpjpegpay"),
    *("audiotestsrc", "wavparse", "audioconvert", "audioresample", "mulawenc", "rtppcmupay"),
]


def missing_elements() -> list[str]:
    Gst.init(None)
    return [name for name in NEEDED_ELEMENTS if Gst.ElementFactory.find(name) is None]


def launch_line(jpeg: str | None, audio: bool, audio_wav: str | None, fps: int) -> str:
    if jpeg:
        video_src = f'filesrc location="{jpeg}" ! jpegdec ! videoconvert ! imagefreeze is-live=true'
    else:
        video_src = "videotestsrc is-live=true pattern=smpte ! videoconvert"
    video = f"{video_src} ! video/x-raw,format=I420,framerate={fps}/1 ! jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26"
    if not audio:
        return f"( {video} )"
    if audio_wav:
        audio_src = f'multifilesrc location="{audio_wav}" loop=true ! wavparse ignore-length=true'
    else:
        audio_src = "audiotestsrc is-live=true wave=sine freq=440 volume=0.3"
    pcmu = "audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0"
    return f"( {video} {audio_src} ! {pcmu} )"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 0 if every GStreamer element is installed")
    parser.add_argument("--port", type=int)
    parser.add_argument("--jpeg", help="still JPEG to loop (default: GStreamer's test pattern)")
    parser.add_argument("--no-audio", action="store_true", help="video track only")
    parser.add_argument("--audio-wav", help="WAV file looped as the audio track (default: a 440 Hz tone)")
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--path", default="/cam", help="mount point (default /cam)")
    parser.add_argument("--user", help="require RTSP basic auth with this user name")
    parser.add_argument("--password", default="", help="password for --user")
    parser.add_argument(
        "--unshared",
        action="store_true",
        help="one pipeline per client, as most cameras do (a shared media first set up audio-only, by the cry "
        "listener, refuses a later client's video)",
    )
    args = parser.parse_args()
    if args.check:
        missing = missing_elements()
        print("missing GStreamer elements: " + " ".join(missing) if missing else "ok")
        return 1 if missing else 0
    if args.port is None:
        parser.error("--port is required")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.jpeg, not args.no_audio, args.audio_wav, args.fps))
    factory.set_shared(not args.unshared)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
