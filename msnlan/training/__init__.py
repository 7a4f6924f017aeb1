"""msnlan.training"""
