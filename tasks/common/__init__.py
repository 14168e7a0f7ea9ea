"""What every domain uses: retry policy and ``cloud_api_task``, API rate limits, time parsing,
atomic files, data paths, SVG charts, secret masking."""
