"""Reports: stable output order, the closing line, the timeline page, and merging the reports
of shards.
"""
