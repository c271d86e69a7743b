"""What each worker gets: its temp dir, port block (leased machine-wide), database, and the
plugin hooks that set them up and tear them down.
"""
