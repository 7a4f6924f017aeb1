"""msnlan.data"""
