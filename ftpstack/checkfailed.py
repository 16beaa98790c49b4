"""What the client-side checks (`ftpstack.ftpcheck`, `ftpstack.sftpcheck`) raise."""


class CheckFailed(Exception):
    """The endpoint does not serve as declared; str() says what and where."""


class NotReady(CheckFailed):
    """Nothing answers yet (or the server is full): worth waiting for while the VM boots."""
