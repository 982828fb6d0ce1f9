"""The app side of chatobs when an agent does the pipeline's work: hand finished spans over, cheaply."""
