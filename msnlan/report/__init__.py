"""msnlan.report"""
